"""regload test suite."""
