"""HTTP API: one module per NGSI-LD resource, plus the platform's own resources."""
