"""systemd units and the reconciler's environment file, installed as the data package
``edgefleet_deploy`` (see setup.py); edge-installer writes the agent's unit from here."""
