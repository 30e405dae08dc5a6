"""Liveline: an event-sourced backend for live-coverage pages."""
