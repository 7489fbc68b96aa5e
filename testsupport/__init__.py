"""Launchers for the real services the test suites start on loopback (not shipped).

Each module starts one server as a child process on a free port, waits until it answers, and
stops it by PID. Tests use them through session-scoped fixtures; a server that cannot start
fails the tests that need it (it never skips them).
"""
