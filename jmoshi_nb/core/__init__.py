"""Constants, audio and text, configs, recordings, fonts and figures: what every stage shares."""
