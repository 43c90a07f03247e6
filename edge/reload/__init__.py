"""Reloading the config of a running gateway without dropping its OPC UA sessions.

``plan`` (pure): what changed between the running config and the new one (``plan_reload``), what
stays as it is until a restart (``effective_config``), and the located errors of a refused config.
``apply``: the ``Reloader`` that re-reads the config on request (SIGHUP, ``edgetwin reload``) and
hands each part its share of the plan (registry, OPC UA address space, alarms, history, methods,
device and twin runners). ``pidfile``: the pid file ``edgetwin reload`` finds the gateway by, and
the reload status file it reads the outcome from. ``cli``: the ``edgetwin reload`` subcommand.
"""
