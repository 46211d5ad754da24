-- fresh planner statistics for the sends table after a large seeding
ANALYZE sends
