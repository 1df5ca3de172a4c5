"""Declarative automation where it fits: a release's norm stats, Robo-DM cache and openpi export
follow its LeRobot dataset.

When ``lerobot_dataset`` of a release is materialized on its own (e.g. from the UI's launchpad with
a supervisor's approve/reject decisions), ``norm_stats``, ``robodm_cache`` and ``openpi_export``
(after ``norm_stats``) of that release are rebuilt after it, provided its blocking checks passed. The dataset itself is not automated: a
release's content only changes through a new release partition (docs/automation.md).
"""

import dagster as dg

#: eager: after the upstream partition updates, once nothing upstream is missing or in progress;
#: and never past a failed blocking check of the upstream (the same rule release_job follows).
FOLLOW_UPSTREAM = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

release_derivatives_automation = dg.AutomationConditionSensorDefinition(
    "release_derivatives_automation",
    target=dg.AssetSelection.assets("norm_stats", "robodm_cache", "openpi_export"),
    default_condition=FOLLOW_UPSTREAM,
    use_user_code_server=True,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="norm_stats, robodm_cache and openpi_export of a release follow its lerobot_dataset (eager, after "
                "its blocking checks passed).",
)
