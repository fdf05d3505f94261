"""etcd v3 JSON gateway (grpc-gateway wire format of etcd 3.4) on top of a raftkv node.

Existing etcd HTTP clients speak `/v3/...` JSON; this package reproduces etcd 3.4.23's
gateway byte for byte where clients can tell (field names, int64-as-string, omitted
zero values, error bodies, stream chunking). `mount()` adds the routes to an app.
"""

from raftkv.server.etcd.routes import mount

__all__ = ["mount"]
