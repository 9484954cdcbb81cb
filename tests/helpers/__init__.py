"""Helpers shared by several test folders (fakes, servers, tiny models, browsers).

Import them as ``from tests.helpers import fakeclf``; pytest puts the repository root on
``sys.path`` because ``tests`` is a package.
"""
