"""Research tools: WAV runs, sweeps and executors, continuation, turn-taking, static plots, speech."""
