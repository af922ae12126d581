"""Process wiring: settings, generated credentials, the ``mirrorhub`` command."""
