/** Platform layer (RTNETLINK, egress detection, namespaces): not built yet, see the platform issue. */
export {};
