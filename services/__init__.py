"""The mirrorhub services. Each subpackage is one service and never imports another."""
