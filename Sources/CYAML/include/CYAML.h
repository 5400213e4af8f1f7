// Debian's libyaml (libyaml-dev): YAML 1.1 parser and emitter events, used by GWAdmin/YAML.swift for
// declarative configuration files and `db_export`.
#ifndef CYAML_H
#define CYAML_H
#include <yaml.h>
#endif
