"""The web UI for merchandisers: static pages served by the service at `/` (no CDN, no build step).

`static/` holds index.html, app.js, app.css and vendored libraries (cytoscape.min.js, MIT licence
in cytoscape.LICENSE.txt).
"""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
