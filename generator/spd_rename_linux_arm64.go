package generator

const sysRenameat2 = 276
