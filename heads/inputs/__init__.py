"""What a head reads: label tables (one reader per corpus, in corpora/), cached features, and the batch order.

The first of stage 2's three rooms (inputs <- fit <- after): it imports neither of the others.
"""
