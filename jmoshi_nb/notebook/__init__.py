"""The notebook: the session facade, the talk panel and its widgets, live plots, the Jupyter config."""
