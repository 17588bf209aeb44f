export const message = "version 1";
