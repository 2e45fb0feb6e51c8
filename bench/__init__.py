"""Benchmarks and load tools run against loopback or the sandbox servers."""
