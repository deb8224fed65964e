"""The built-in packs (``packs/``) and node templates (``nodes/``), installed as the data
package ``edgefleet_templates`` (see setup.py) and found through importlib.resources."""
