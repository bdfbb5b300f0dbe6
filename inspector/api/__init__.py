"""What every REST endpoint shares: the one error shape and flattener, parsers, schema pieces,
strict fields and request serializers (the route table is inspector.api_urls)."""
