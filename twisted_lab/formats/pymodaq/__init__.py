"""
PyMoDAQ's data formats, shared by the PyMoDAQ 4 TCP/IP roles
(L{twisted_lab.protocols.pymodaq}) and the LECO PyMoDAQ 5 actor and director
(L{twisted_lab.protocols.leco}): the settings tree as parameter XML
(L{settings}) and the C{ParameterWithPath} object (L{objects}).
"""
