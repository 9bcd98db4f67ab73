"""The application: command line, training loop, evaluation runs and reports.

The library (`vidssl.data`, `vidssl.models`, `vidssl.losses`, `vidssl.methods`, `vidssl.dist`)
never imports from here.
"""
