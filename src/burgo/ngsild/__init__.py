"""The NGSI-LD standard, pure: entities, @context handling, representations, errors. No I/O."""
