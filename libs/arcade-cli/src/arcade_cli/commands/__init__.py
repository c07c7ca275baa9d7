"""The arcade command's subcommands, one module per topic."""
