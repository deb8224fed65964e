"""The DesiredState's schedules as jobs, run on time in the site's local time."""
