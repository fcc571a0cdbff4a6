"""`s2s serve`: a LibreTranslate-compatible HTTP server and web page over `pipeline.api.Translator`."""
