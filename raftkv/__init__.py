"""raftkv: an etcd-like, strongly consistent coordination store."""

__version__ = "0.2.0"
