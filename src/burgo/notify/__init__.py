"""Notifications: delivery of the subscription outbox to HTTP and MQTT endpoints."""
