"""The team behind the territories: workload, reps needed, and (to come) matching reps to territories and
journey plans (issue 15). The roster itself is stored by terrmap.data.team and read by terrmap.io.roster."""
