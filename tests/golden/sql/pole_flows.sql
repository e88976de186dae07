SELECT * FROM pole_flows ORDER BY local_day, from_pole, to_pole
