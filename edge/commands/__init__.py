"""One module per ``edge`` subcommand; each imports its heavy dependencies itself."""
