"""The web layer: dashboard and documentation pages, with vendored static assets."""
