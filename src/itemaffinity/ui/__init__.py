"""The web UI for merchandisers: static pages served by the service at `/` (no CDN, no build step).

`static/` holds index.html, app.js, app.css and vendored libraries, copied from their npm packages:
cytoscape.min.js (cytoscape 3.34.4, MIT, cytoscape.LICENSE.txt) for the association network, and
swagger-ui-bundle.js / swagger-ui.css (swagger-ui-dist 5.35.0, Apache-2.0, swagger-ui.LICENSE.txt)
for the API documentation at /docs.
"""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
