// CDashboardAssets: the dashboard's files (Sources/GWServer/Dashboard/), embedded in the binary at
// compile time by clang's `#embed` (assets.c). One read-only table of {URL path, Content-Type, bytes};
// nothing is copied or allocated here. GWServer's DashboardAssets.swift wraps it for the dashboard.
#ifndef CDASHBOARDASSETS_H
#define CDASHBOARDASSETS_H
#include <stddef.h>

struct gw_dashboard_asset {
    const char *path;           // URL path: "/index.html" or "/assets/<file name>"
    const char *content_type;
    const unsigned char *bytes; // the file's bytes, exactly (no terminating NUL counted)
    size_t length;
};

/// How many files the table holds.
size_t gw_dashboard_asset_count(void);
/// The i-th file (i < gw_dashboard_asset_count()), sorted by file name.
const struct gw_dashboard_asset *gw_dashboard_asset_at(size_t i);

#endif
