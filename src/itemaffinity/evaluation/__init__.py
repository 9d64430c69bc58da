"""Offline evaluation and the HTML report."""
