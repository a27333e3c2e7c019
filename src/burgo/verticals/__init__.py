"""The five verticals (city, care, agro, enterprise, education): domain code shared by the
dashboard and the simulator."""
