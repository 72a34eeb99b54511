LECO: a Coordinator with federation, actors exporting registry devices, a director importing pyleco actors, and the data protocol (proxy and publisher), interoperable with pyleco 0.6.0.post1.
