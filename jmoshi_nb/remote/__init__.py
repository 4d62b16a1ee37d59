"""The client side of Modal: starting the deployed app's containers and calling them (below research)."""
