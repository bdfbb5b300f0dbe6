"""Tests of engine/ against real packaged models and a tiny random one."""
