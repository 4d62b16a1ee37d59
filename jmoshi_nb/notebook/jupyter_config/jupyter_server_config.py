"""jmoshi-nb's Jupyter server config: enable the low-latency kernel WebSocket extension.

Loaded when this folder is on ``JUPYTER_CONFIG_PATH`` (``scripts/lab.sh`` does that); other
config files on the path still apply, and this one only adds to ``jpserver_extensions``.
"""

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by traitlets when loading
c.ServerApp.jpserver_extensions.update({"jmoshi_nb.notebook.jupyter_config": True})
