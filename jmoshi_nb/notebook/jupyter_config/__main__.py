"""``python -m jmoshi_nb.notebook.jupyter_config`` prints the config folder to put on JUPYTER_CONFIG_PATH."""

from . import config_dir

print(config_dir())
