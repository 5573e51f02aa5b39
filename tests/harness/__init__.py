"""Test harnesses shared by the test suites (see netns for the multi-host network)."""
