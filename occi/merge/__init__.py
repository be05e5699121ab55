"""`occi merge`: the weighted average of exported models of one architecture."""
