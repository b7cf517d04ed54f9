"""Qdrant's distributed mode in the team scenario: NOT WIRED YET.

TODO(issue 17, item 2 + 3): once roles/qdrant has its cluster variables
(`qdrant_cluster_enabled` and the rest, from the "qcluster" branch), give the scenario a
second Qdrant host (group qdrant, `stack_proxy_qdrant_cluster: true`) and assert here what the
stand-in cannot show by running a cluster (it runs one node and only warns about
`cluster.enabled`, tests/qdrant-standin/qdrant.py):

- the rendered config: `cluster.enabled`, the p2p port, `storage.collection.replication_factor`
  and `write_consistency_factor`, one API key on every node;
- the unit's flags and join order: the first node with `--uri`, the others with `--bootstrap`
  pointing at it, started only after the first is ready;
- the firewall: the p2p port open between the peers only (nft table on each node), the HTTP
  port only from the proxy (as test_backend_firewall.py checks for one node);
- HAProxy: both Qdrant servers in the `qdrant` backend.

Until then this module holds no tests.
"""
