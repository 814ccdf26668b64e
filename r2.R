suppressMessages({library(lmerTest); library(pbkrtest)})
d <- read.csv("/tmp/aud2/mmrm2.csv"); d$arm <- factor(d$arm, levels=c("pbo","ket")); d$visit<-factor(d$visit)
d <- d[!is.na(d$change),]
m <- lmer(change ~ arm*visit + baseline*visit + (1|subject), data=d, REML=TRUE)
print(VarCorr(m), comp="Variance")
s <- summary(m, ddf="Satterthwaite")$coefficients; print(s[c("armket","armket:visitw4","baseline"),])
s <- summary(m, ddf="Kenward-Roger")$coefficients; print(s[c("armket","armket:visitw4","baseline"),])
print(anova(m, ddf="Satterthwaite")); print(anova(m, ddf="Kenward-Roger"))
