"""Runnable example apps; each is exercised by a test."""
