"""Running as a systemd service: readiness, status and watchdog notifications (``notify``), the unit
file rendered for a config (``unit``) and the install steps of ``edgetwin install-service`` (``install``)."""
