"""The HTTP bridge: the documented endpoints for phone apps, each an MQTT request/reply."""
