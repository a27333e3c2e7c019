"""Device ingestion: the registry's logic, decoders, LoRaWAN uplinks, MQTT, device health."""
