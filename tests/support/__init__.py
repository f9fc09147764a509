"""Test support code: the VRML reader and the fake Webots ``controller`` module."""
