-- The completion markers between two ids (a range of one send's run dates), in one query.
SELECT marker_id FROM task_markers WHERE marker_id >= :low AND marker_id <= :high
