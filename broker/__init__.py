"""The MQTT side of every mirrorhub process: embedded broker, client bus, service runner."""
