"""The drift report's Jinja2 templates (package data; rendered by ``monitoring.report``)."""
