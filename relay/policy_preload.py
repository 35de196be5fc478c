"""Imported by the content workers' fork server before it forks a worker (relay.policy_pool):
what every worker needs is then loaded once per relay instead of once per worker. The
server also dies with the relay that started it, and its workers with it."""

from relay import policy_pool

policy_pool.die_with_parent()
policy_pool.preload()
