"""Report writers: text (terminal), JSON, CSV and HTML. They only read the Report."""
